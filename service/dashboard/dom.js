// Building the page's DOM. Text is always a text node (textContent): nothing the API
// answers, a note or a rep's name, is ever parsed as markup.

/** An element: ``props`` are attributes, ``class``, ``text``, ``dataset`` and ``on…`` handlers. */
export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = value;
    else if (key === 'dataset') {
      for (const [name, item] of Object.entries(value)) {
        if (item !== null && item !== undefined) node.dataset[name] = String(item);
      }
    } else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

export function section(title, ...children) {
  return h('section', { class: 'panel' }, h('h2', { text: title }), ...children);
}

/** A value as a data attribute: '' for null. */
export function raw(value) {
  return value === null || value === undefined ? '' : String(value);
}
