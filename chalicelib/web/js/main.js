// soundcheck's web app: wires the sections into the router. The admin console's item
// shows only once GET /api/me has said the key is an admin's; the console and the API
// page are loaded on first visit (most visitors never open them).

import * as me from './me.js';
import { navItem, refreshNav, route, signInSection, start } from './router.js';
import * as session from './session.js';
import { compare } from './sections/compare.js';
import { home } from './sections/home.js';
import { job } from './sections/job.js';
import { shared } from './sections/shared.js';
import { signin } from './sections/signin.js';

session.signInFromFragment();

/** A section whose module is imported on its first visit. */
function lazy(title, load, needsKey = true) {
  return { title, needsKey, render: async (...args) => (await load()).render(...args) };
}

route('/', home);
route('/jobs/:id', job);
route('/compare', compare);
route('/compare/:a/:b', compare);
route('/shared/:token', shared);
route('/signin', signin);
route('/admin', lazy('Admin console', async () => (await import('./sections/admin.js')).admin));
route('/api', lazy('API', async () => (await import('./sections/api-page.js')).apiPage, false));
signInSection(signin);

navItem({ label: 'Analyse', href: '#/', when: () => Boolean(session.key()) });
navItem({ label: 'Compare', href: '#/compare', when: () => Boolean(session.key()) });
navItem({ label: 'Console', href: '#/admin', when: () => me.isAdmin(refreshNav) });
navItem({ label: 'API', href: '#/api' });

start();
