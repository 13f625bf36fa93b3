// Forms generated from an operation's parameters and body schema, shared by the explorer and
// the flow editor. Every value may be a template (`{{ event.id }}`): those stay text.

import { h } from "./dom.js";

const TEMPLATE = /\{\{.*\}\}/;

function resolve(schema, root) {
  let current = schema || {};
  for (let hops = 0; current.$ref && hops < 10; hops += 1) {
    const path = current.$ref.replace(/^#\//, "").split("/");
    current = path.reduce((node, key) => (node ? node[key] : undefined), root) || {};
  }
  if (current.allOf && !current.properties) {
    return current.allOf.reduce((merged, part) => {
      const resolved = resolve(part, root);
      return { ...merged, ...resolved, properties: { ...merged.properties, ...resolved.properties } };
    }, { properties: {} });
  }
  return current;
}

function kindOf(schema) {
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== "null") : schema.type;
  if (schema.enum) return "enum";
  if (type === "object" || type === "array" || schema.properties) return "json";
  return type || "string";
}

/** Turn typed text into a value of the schema's type; templates and blanks stay as they are. */
export function parseValue(text, kind) {
  if (text === "") return undefined;
  if (TEMPLATE.test(text)) return text;
  if (kind === "integer" || kind === "number") {
    const number = Number(text);
    return Number.isNaN(number) ? text : number;
  }
  if (kind === "boolean") return text === "true" ? true : text === "false" ? false : text;
  if (kind === "json") {
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }
  return text;
}

function show(value) {
  if (value === undefined || value === null) return "";
  return typeof value === "string" ? value : JSON.stringify(value);
}

function input(kind, schema, value, field, label, required) {
  let control;
  if (kind === "enum") {
    control = h("select", { dataset: { field, kind: "string" } },
      h("option", { value: "" }, required ? "Choose…" : "(none)"),
      schema.enum.map((option) => h("option", { value: String(option), selected: String(option) === show(value) }, String(option))));
  } else if (kind === "boolean") {
    control = h("select", { dataset: { field, kind } },
      ["", "true", "false"].map((option) => h("option", { value: option, selected: option === show(value) }, option || "(none)")));
  } else {
    control = h("input", { value: show(value), dataset: { field, kind }, placeholder: kind === "json" ? "JSON" : kind });
  }
  control.required = Boolean(required);
  return h("label", {}, `${label}${required ? " *" : ""}`, control,
    schema.description ? h("small", { className: "muted" }, schema.description.slice(0, 140)) : null);
}

/** Inputs for an operation's parameters; `read()` returns `{name: value}` of the filled ones. */
export function parameterForm(parameters, values, prefix) {
  const shown = parameters.filter((p) => !p.filledByInstallation);
  const node = h("div", { className: "grid" },
    shown.map((p) => input(p.enum ? "enum" : kindOf(p.schema || {}), { ...(p.schema || {}), enum: p.enum, description: p.description },
      values[p.name], `${prefix}.${p.name}`, `${p.name} (${p.in})`, p.required)));
  return {
    node,
    read() {
      const result = {};
      for (const control of node.querySelectorAll("[data-field]")) {
        const name = control.dataset.field.slice(prefix.length + 1);
        const value = parseValue(control.value, control.dataset.kind);
        if (value !== undefined) result[name] = value;
      }
      return result;
    },
  };
}

/** A body editor: one input per top-level property, or JSON text when the schema is not flat. */
export function bodyForm(body, value, field) {
  if (!body) return { node: h("span"), read: () => undefined };
  const schema = resolve(body.schema, body.schema);
  const properties = schema.properties || {};
  const names = Object.keys(properties);
  const asJson = h("textarea", { rows: 5, spellcheck: false, dataset: { field }, value: value === undefined || value === null ? "" : JSON.stringify(value, null, 2) });
  if (!names.length || (value !== undefined && value !== null && typeof value !== "object")) {
    return {
      node: h("label", {}, `Body (JSON)${body.required ? " *" : ""}`, asJson),
      read: () => parseValue(asJson.value.trim(), "json"),
    };
  }
  const required = new Set(schema.required || []);
  const current = value && typeof value === "object" ? value : {};
  const grid = h("div", { className: "grid" }, names.map((name) => {
    const property = resolve(properties[name], body.schema);
    return input(kindOf(property), property, current[name], `${field}.${name}`, name, required.has(name));
  }));
  return {
    node: h("fieldset", {}, h("legend", {}, `Body${body.required ? " *" : ""}`), grid),
    read() {
      const result = {};
      for (const control of grid.querySelectorAll("[data-field]")) {
        const name = control.dataset.field.slice(field.length + 1);
        const parsed = parseValue(control.value, control.dataset.kind);
        if (parsed !== undefined) result[name] = parsed;
      }
      return Object.keys(result).length ? result : undefined;
    },
  };
}
