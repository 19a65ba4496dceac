// Flow pictures: a "Flows" card listing each line with the flow behind it (GET flows/index.json); its
// button shows the picture the gateway draws (GET flows/<line>.svg), or the gateway's message saying
// why it cannot. Independent of app.js: it only adds its own card to the page.

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') node.className = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function message(text) {
  const pre = el('pre', {class: 'flow-message', role: 'status'}, text);
  pre.style.whiteSpace = 'pre-wrap';
  pre.style.color = '#b91c1c';
  return pre;
}

const urls = new Map();   // figure -> object URL of the picture it shows

function forget(figure) {
  if (urls.has(figure)) { URL.revokeObjectURL(urls.get(figure)); urls.delete(figure); }
}

async function show(entry, figure) {
  forget(figure);
  figure.replaceChildren(el('div', {class: 'muted'}, 'Drawing the flow…'));
  try {
    const res = await fetch(entry.picture, {cache: 'no-store'});
    if (!res.ok) {
      const text = (await res.text()).trim() || `HTTP ${res.status}`;
      figure.replaceChildren(message(text));
      return;
    }
    const url = URL.createObjectURL(await res.blob());
    urls.set(figure, url);
    const img = el('img', {class: 'flow-picture', alt: `flow of line ${entry.line}`, src: url});
    img.style.maxWidth = '100%';
    img.style.height = 'auto';
    const link = (child) => el('a', {href: entry.picture, target: '_blank', rel: 'noopener'}, child);
    figure.replaceChildren(link(img), el('div', {}, link('Open full size')));
  } catch (e) {
    figure.replaceChildren(message(`Could not load the flow picture: ${e.message}`));
  }
}

function lineRow(entry) {
  const button = el('button', {type: 'button', 'aria-expanded': 'false'}, 'Show flow');
  const figure = el('div', {class: 'flow-figure'});
  figure.hidden = true;
  button.addEventListener('click', () => {
    const open = figure.hidden;
    figure.hidden = !open;
    button.textContent = open ? 'Hide flow' : 'Show flow';
    button.setAttribute('aria-expanded', String(open));
    if (open) show(entry, figure); else { forget(figure); figure.replaceChildren(); }
  });
  const head = el('div', {class: 'flow-head'},
    el('span', {}, 'line ', el('b', {}, entry.line), ` · ${entry.flow}`), button);
  head.style.display = 'flex';
  head.style.justifyContent = 'space-between';
  head.style.alignItems = 'center';
  head.style.gap = '0.5em';
  return el('div', {class: 'flow-line', 'data-line': entry.line}, head, figure);
}

async function init() {
  let lines = [];
  try {
    const res = await fetch('flows/index.json', {cache: 'no-store'});
    if (res.ok) {
      const data = await res.json();
      if (data && Array.isArray(data.lines)) lines = data.lines;
    }
  } catch (e) {
    console.warn(`flow pictures unavailable: ${e.message}`);
  }
  const column = document.querySelector('main .col:last-child');
  if (!lines.length || !column) return;
  const card = el('section', {id: 'flows-panel', class: 'card'}, el('h2', {}, 'Flows'),
    el('div', {id: 'flows'}, ...lines.map(lineRow)));
  column.append(card);
}

init();
