// Upload one or more tracks (drag and drop or the file picker), watch each upload's
// real progress, submit against a genre or a reference; below, the caller's history.

import * as api from '../api.js';
import { append, clear, h, toast } from '../dom.js';
import { bytes } from '../format.js';
import { go } from '../router.js';
import { historyTable, jobLabel } from './jobs-table.js';
import { poller } from '../poll.js';

const ACCEPT = 'audio/*,.wav,.wave,.flac,.aif,.aiff,.mp3,.ogg,.oga,.opus,.m4a,.caf,.w64';

function uploadRow(file) {
  const progress = h('progress', { max: 1, value: 0, 'aria-label': `upload progress of ${file.name}` });
  const state = h('span', { class: 'upload-state' }, 'ready');
  const remove = h('button', { type: 'button', class: 'link', 'aria-label': `remove ${file.name}` }, 'remove');
  const el = h('li', { class: 'upload' },
    h('span', { class: 'upload-name' }, file.name), h('span', { class: 'muted' }, bytes(file.size)), progress, state, remove);
  return { file, el, progress, state, remove, done: false };
}

async function genreSelect(select, signal) {
  try {
    const data = await api.get('api/genres');
    if (signal.aborted) return;
    clear(select);
    for (const kind of ['destination', 'genre']) {
      const group = h('optgroup', { label: kind === 'genre' ? 'Genres' : 'Destinations' });
      for (const g of data.genres.filter((x) => x.kind === kind)) {
        group.append(h('option', { value: g.name, selected: g.name === data.default }, g.title));
      }
      select.append(group);
    }
  } catch (e) {
    toast(api.message(e), 'error');
  }
}

export const home = {
  title: 'Analyse',
  async render(main, params, { signal }) {
    const rows = [];
    const list = h('ul', { class: 'uploads', 'aria-live': 'polite' });
    const picker = h('input', { type: 'file', id: 'file-input', multiple: true, accept: ACCEPT, class: 'visually-hidden' });
    const genre = h('select', { id: 'genre', name: 'genre' }, h('option', {}, 'loading…'));
    const refJob = h('select', { id: 'reference-job', name: 'reference-job' }, h('option', { value: '' }, '(no completed jobs yet)'));
    const refFile = h('input', { type: 'file', id: 'reference-file', accept: ACCEPT });
    const mode = (value, label, control, checked = false) => h('div', { class: 'mode' },
      h('input', { type: 'radio', name: 'mode', id: `mode-${value}`, value, checked }),
      h('label', { for: `mode-${value}` }, label), control);
    const submit = h('button', { type: 'submit', class: 'primary', disabled: true }, 'Analyse');
    const formError = h('p', { class: 'error', role: 'alert' });

    const refresh = () => {
      const pending = rows.filter((r) => !r.done).length;
      submit.disabled = pending === 0;
      submit.textContent = pending > 1 ? `Analyse ${pending} files` : 'Analyse';
    };
    const addFiles = (files) => {
      for (const file of files) {
        const row = uploadRow(file);
        row.remove.addEventListener('click', () => {
          row.controller?.abort();
          rows.splice(rows.indexOf(row), 1);
          row.el.remove();
          refresh();
        });
        rows.push(row);
        list.append(row.el);
      }
      refresh();
    };
    picker.addEventListener('change', () => { addFiles([...picker.files]); picker.value = ''; });

    const drop = h('div', { class: 'drop', id: 'drop' },
      h('p', {}, 'Drop audio files here, or'),
      h('label', { for: 'file-input', class: 'button', tabindex: 0,
        onkeydown: (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); picker.click(); } } }, 'choose files'),
      picker,
      h('p', { class: 'muted' }, 'WAV, FLAC, AIFF, MP3, OGG…; several at once.'));
    for (const type of ['dragenter', 'dragover']) {
      drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add('over'); });
    }
    for (const type of ['dragleave', 'drop']) {
      drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.remove('over'); });
    }
    drop.addEventListener('drop', (e) => addFiles([...(e.dataTransfer?.files || [])]));

    const form = h('form', {
      class: 'card',
      async onsubmit(event) {
        event.preventDefault();
        formError.textContent = '';
        const chosen = form.querySelector('input[name=mode]:checked').value;
        const base = {};
        if (chosen === 'genre') base.genre = genre.value;
        if (chosen === 'job') {
          if (!refJob.value) { formError.textContent = 'Pick an earlier job as the reference.'; return; }
          Object.assign(base, { mode: 'reference', referenceJobId: refJob.value });
        }
        submit.disabled = true;
        try {
          if (chosen === 'file') {
            const file = refFile.files[0];
            if (!file) { formError.textContent = 'Choose a reference file.'; refresh(); return; }
            const key = await api.upload(file, () => {}, signal);
            Object.assign(base, { mode: 'reference', referenceFileKey: key });
          }
        } catch (e) {
          formError.textContent = `Reference: ${api.message(e)}`;
          refresh();
          return;
        }
        const submitted = [];
        await Promise.all(rows.filter((r) => !r.done).map(async (row) => {
          row.controller = new AbortController();
          row.state.textContent = 'uploading';
          try {
            const key = await api.upload(row.file, (f) => {
              row.progress.value = f;
              row.state.textContent = `uploading ${Math.round(f * 100)}%`;
            }, row.controller.signal);
            row.state.textContent = 'submitting';
            const job = await api.post('api/audio/analyze', { fileKey: key, fileName: row.file.name, ...base });
            row.done = true;
            row.state.textContent = '';
            row.state.append(h('a', { href: `#/jobs/${encodeURIComponent(job.jobId)}` }, 'submitted: open report'));
            row.remove.remove();
            submitted.push(job.jobId);
          } catch (e) {
            row.state.textContent = api.message(e);
            row.state.classList.add('error');
          }
        }));
        refresh();
        if (signal.aborted) return;
        if (submitted.length === 1 && rows.length === 1) go(`/jobs/${submitted[0]}`);
        else history.refresh();
      },
    },
    h('h2', {}, 'Upload'),
    drop,
    list,
    h('fieldset', {},
      h('legend', {}, 'Compare with'),
      mode('genre', 'Genre targets', genre, true),
      mode('job', 'An earlier job (reference)', refJob),
      mode('file', 'A reference file', refFile)),
    submit,
    formError);

    const historyBox = h('div', {});
    const history = poller(signal, async () => {
      const data = await api.get('api/jobs?limit=50');
      clear(historyBox).append(historyTable(data.jobs));
      const completed = data.jobs.filter((j) => j.status === 'completed');
      const current = refJob.value;
      append(clear(refJob), [completed.length ? null : h('option', { value: '' }, '(no completed jobs yet)'),
        completed.map((j) => h('option', { value: j.jobId, selected: j.jobId === current }, jobLabel(j)))]);
      const pending = data.jobs.filter((j) => j.status === 'queued' || j.status === 'processing');
      return pending.length ? pending.map((j) => `${j.jobId}:${j.status}:${j.progress}`).join() : false;
    }, (e) => { clear(historyBox).append(h('p', { class: 'error', role: 'alert' }, api.message(e))); });

    main.append(h('h1', {}, 'Analyse a mix'), form,
      h('section', { 'aria-labelledby': 'history-h' }, h('h2', { id: 'history-h' }, 'Your jobs'), historyBox));
    genreSelect(genre, signal);
    history.refresh();
  },
};
