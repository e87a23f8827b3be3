// soundcheck's web app: wires the sections into the router. A new section (the admin
// console) is a module that calls route() and navItem() the same way.

import { navItem, route, signInSection, start } from './router.js';
import * as session from './session.js';
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
route('/api', apiPage);
signInSection(signin);

navItem({ label: 'Analyse', href: '#/', when: () => Boolean(session.key()) });
navItem({ label: 'Compare', href: '#/compare', when: () => Boolean(session.key()) });
navItem({ label: 'API', href: '#/api' });

start();
