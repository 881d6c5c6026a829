/**
 * The script-tag build: installs `window.touchstream`, starts from the tag's data attributes
 * (data-site, data-endpoint, data-consent, data-datalayer, data-dnt), then replays calls queued
 * by the two-line stub before the script loaded.
 */
import { init, touchstream } from './index.js';

const tag = document.currentScript;
const queued = (window.touchstream && window.touchstream.q) || [];
window.touchstream = touchstream;
try {
  const d = tag && tag.dataset;
  if (d && d.site) {
    init({
      site: d.site,
      endpoint: d.endpoint || new URL('/v1/events', tag.src).href,
      consent: d.consent,
      datalayer: 'datalayer' in d,
      dnt: 'dnt' in d,
    });
  }
} catch (e) {}
// `init` first (the sort is stable), so calls queued before it are not lost.
queued.sort((a, b) => (b[0] == 'init') - (a[0] == 'init')).forEach((args) => touchstream(...args));
