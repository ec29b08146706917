// Treaty UI: the little the pages need beyond HTML. Every page works
// without it; with it, the overview refreshes in place, pickers submit on
// change and a verification shows its progress.
'use strict';

// Elements with data-refresh="URL" are replaced by that URL's HTML every
// data-every seconds (default 5), while the page is visible.
function refreshLoop(el) {
  const every = Number(el.dataset.every || 5) * 1000;
  async function tick() {
    if (!document.hidden) {
      try {
        const res = await fetch(el.dataset.refresh, { credentials: 'same-origin' });
        if (res.ok && !res.redirected) {
          el.innerHTML = await res.text();
          el.dataset.refreshed = String(Date.now());
        }
      } catch (_) {
        // The gateway is restarting or the network is down: try again.
      }
    }
    setTimeout(tick, every);
  }
  setTimeout(tick, every);
}

// A verification's progress: polls data-poll (JSON) until finished.
function pollJob(el) {
  const bar = el.querySelector('progress');
  const text = el.querySelector('[data-status]');
  async function tick() {
    let job;
    try {
      const res = await fetch(el.dataset.poll, { credentials: 'same-origin' });
      job = await res.json();
    } catch (_) {
      setTimeout(tick, 500);
      return;
    }
    if (job.total > 0) {
      bar.max = job.total;
      bar.value = job.done;
    }
    text.textContent = job.summary;
    if (job.finished) {
      bar.value = bar.max;
      el.dataset.finished = job.ok ? 'ok' : 'failed';
      el.classList.add(job.ok ? 'ok' : 'bad');
      return;
    }
    setTimeout(tick, 300);
  }
  tick();
}

document.addEventListener('DOMContentLoaded', () => {
  document.querySelectorAll('[data-refresh]').forEach(refreshLoop);
  document.querySelectorAll('[data-poll]').forEach(pollJob);
  document.querySelectorAll('select[data-autosubmit]').forEach((s) => {
    s.addEventListener('change', () => s.form && s.form.requestSubmit());
  });
  document.querySelectorAll('form[data-confirm]').forEach((f) => {
    f.addEventListener('submit', (e) => {
      if (!window.confirm(f.dataset.confirm)) e.preventDefault();
    });
  });
});
