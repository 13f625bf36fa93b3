// Small DOM helpers: build elements without innerHTML, so payload text is never markup.

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key in node && key !== "list") node[key] = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

export const $ = (selector, root = document) => root.querySelector(selector);

export function clear(node) {
  node.replaceChildren();
  return node;
}

export function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return date.toLocaleString("en", { dateStyle: "medium", timeStyle: "medium" });
}

export function pretty(value) {
  return typeof value === "string" ? value : JSON.stringify(value, null, 2);
}

export function canWrite() {
  return document.body.dataset.canWrite === "true";
}

/** Show field errors `[{field, message}]` in a box and mark the inputs that hold them. */
export function showErrors(box, errors, root = document) {
  for (const marked of root.querySelectorAll(".invalid")) marked.classList.remove("invalid");
  if (!errors || !errors.length) {
    box.hidden = true;
    return;
  }
  clear(box).append(h("ul", {}, errors.map((e) => h("li", {}, h("strong", {}, e.field), ": ", e.message))));
  box.hidden = false;
  for (const error of errors) {
    const target = findField(root, error.field);
    if (target) target.classList.add("invalid");
  }
}

function findField(root, field) {
  let name = field;
  while (name) {
    const found = root.querySelector(`[data-field="${CSS.escape(name)}"]`);
    if (found) return found;
    const cut = Math.max(name.lastIndexOf("."), name.lastIndexOf("["));
    name = cut > 0 ? name.slice(0, cut) : "";
  }
  return null;
}
