// soundcheck's web app: wires the sections into the router. The admin console's item
// shows only once GET /api/me has said the key is an admin's.

import * as me from './me.js';
import { navItem, refreshNav, route, signInSection, start } from './router.js';
import * as session from './session.js';
import { admin } from './sections/admin.js';
import { apiPage } from './sections/api-page.js';
import { compare } from './sections/compare.js';
import { home } from './sections/home.js';
import { job } from './sections/job.js';
import { shared } from './sections/shared.js';
import { signin } from './sections/signin.js';

session.signInFromFragment();

route('/', home);
route('/jobs/:id', job);
route('/compare', compare);
route('/compare/:a/:b', compare);
route('/shared/:token', shared);
route('/signin', signin);
route('/admin', admin);
route('/api', apiPage);
signInSection(signin);

navItem({ label: 'Analyse', href: '#/', when: () => Boolean(session.key()) });
navItem({ label: 'Compare', href: '#/compare', when: () => Boolean(session.key()) });
navItem({ label: 'Console', href: '#/admin', when: () => me.isAdmin(refreshNav) });
navItem({ label: 'API', href: '#/api' });

start();
