// The pools page (#/pools): named groups of printers a job may target ("any printer in this
// pool that you may operate"). Lists the caller's pools and creates, edits and deletes them
// through /api/v1/pools; a cloud without pools says so instead.

import { api } from "./api.js";

export function poolsView(main, { h, act, toast, confirmDialog, replaceKeepingFocus, printers }) {
  const list = h("ul", { class: "pools plain", "aria-label": "Pools" });
  const formTitle = h("h2", { id: "pool-form-title" }, "New pool");
  const name = h("input", { id: "pool-name", type: "text", maxlength: 100, required: true, autocomplete: "off" });
  const choices = h("div", { class: "pool-printers" });
  const error = h("p", { class: "error", role: "alert", id: "pool-error" });
  const save = h("button", { type: "submit" }, "Create pool");
  const stopEditing = h("button", { type: "button", class: "secondary", hidden: true }, "Stop editing");
  const form = h(
    "form",
    { class: "card", "aria-labelledby": "pool-form-title", novalidate: true },
    formTitle,
    h("label", { for: "pool-name" }, "Name"),
    name,
    h("fieldset", {}, h("legend", {}, "Printers in it (those you may operate)"), choices),
    error,
    h("div", { class: "actions" }, save, stopEditing),
  );
  const absent = h("p", { class: "muted", hidden: true }, "This cloud does not offer pools yet.");
  main.append(
    h("h1", {}, "Pools"),
    h(
      "p",
      { class: "muted" },
      "A job sent to a pool starts on whichever of its printers is free and has what the job needs, the least used first.",
    ),
    absent,
    list,
    form,
  );

  let pools = [];
  let editing = null; // the pool the form edits; null: it creates one

  function chosen() {
    return [...choices.querySelectorAll("input:checked")].map((box) => box.value);
  }

  // One checkbox per printer the caller may operate, keeping what is ticked across updates.
  function fillChoices(ticked) {
    const operable = printers().filter((p) => p.role !== "viewer");
    const keys = operable.map((p) => p.id).join("\n");
    if (choices.dataset.keys === keys && ticked === undefined) return;
    const keep = new Set(ticked ?? chosen());
    choices.dataset.keys = keys;
    choices.replaceChildren(
      ...operable.map((p) =>
        h(
          "p",
          { class: "setting" },
          h("input", { type: "checkbox", id: `pool-printer-${p.id}`, value: p.id, checked: keep.has(p.id) }),
          h("label", { for: `pool-printer-${p.id}` }, `${p.name} (${p.model})`),
        ),
      ),
    );
  }

  function edit(pool) {
    editing = pool;
    formTitle.textContent = pool ? `Edit pool ${pool.name}` : "New pool";
    save.textContent = pool ? "Save pool" : "Create pool";
    stopEditing.hidden = !pool;
    name.value = pool ? pool.name : "";
    error.textContent = "";
    fillChoices(pool ? pool.printer_ids : []);
    if (pool) name.focus();
  }
  stopEditing.addEventListener("click", () => edit(null));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const body = { name: name.value.trim(), printer_ids: chosen() };
    if (!body.name) {
      error.textContent = "Give the pool a name, e.g. PETG farm.";
      name.focus();
      return;
    }
    try {
      if (editing) await api.put(`/api/v1/pools/${encodeURIComponent(editing.id)}`, body);
      else await api.post("/api/v1/pools", body);
      toast(editing ? `Pool ${body.name} saved` : `Pool ${body.name} created`);
      edit(null);
      await update();
    } catch (failure) {
      error.textContent = failure.message;
    }
  });

  async function remove(pool) {
    const ok = await confirmDialog({
      title: `Delete pool ${pool.name}?`,
      text: "Its printers stay as they are. A pool that jobs still wait for is not deleted: cancel them first.",
      ok: "Delete the pool",
      danger: true,
    });
    if (!ok) return;
    await act(`Pool ${pool.name} deleted`, () => api.del(`/api/v1/pools/${encodeURIComponent(pool.id)}`));
    if (editing && editing.id === pool.id) edit(null);
    await update();
  }

  async function update() {
    try {
      pools = await api.get("/api/v1/pools");
    } catch (failure) {
      if (failure.status !== 404) throw failure;
      absent.hidden = false;
      form.hidden = true;
      list.replaceChildren();
      return;
    }
    fillChoices();
    const names = new Map(printers().map((p) => [p.id, p.name]));
    replaceKeepingFocus(
      list,
      ...pools.map((pool) =>
        h(
          "li",
          { class: "pool", dataset: { poolId: pool.id } },
          h("h2", {}, pool.name),
          h(
            "p",
            {},
            pool.printer_ids.length
              ? pool.printer_ids
                  .map((id) => names.get(id) || id)
                  .sort()
                  .join(", ")
              : h("span", { class: "muted" }, "No printers yet."),
          ),
          h(
            "div",
            { class: "actions" },
            h("button", { type: "button", class: "small secondary", "aria-label": `Edit pool ${pool.name}`, onclick: () => edit(pool) }, "Edit"),
            h("button", { type: "button", class: "small danger", "aria-label": `Delete pool ${pool.name}`, onclick: () => remove(pool) }, "Delete"),
          ),
        ),
      ),
    );
    if (pools.length === 0) list.append(h("li", { class: "empty" }, "No pools yet."));
  }
  update().catch((failure) => toast(failure.message, true));
  return { update };
}
