// The Avtor License Manager's console: dialogs, changes through /api/v1, and following the ledger.
// Everything shown comes from the server's escaped HTML or goes through textContent.
"use strict";

(() => {
  const POLL_MS = 3000;
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.getAttribute("content") : "";
  const live = document.getElementById("live");
  const notice = document.getElementById("notice");
  let pendingRemoval = null;
  let opener = null;

  async function call(method, url, body, passive) {
    const headers = { Accept: "application/json", "X-CSRF-Token": csrf };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (passive) headers["X-Avtor-Poll"] = "1";
    let response;
    try {
      response = await fetch(url, {
        method,
        headers,
        credentials: "same-origin",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      return { ok: false, message: "The License Manager cannot be reached: check that it runs, then try again." };
    }
    if (response.status === 401) {
      window.location.assign("/sign-in");
      return { ok: false, message: "The session has ended: sign in again." };
    }
    let answer;
    try {
      answer = await response.json();
    } catch (error) {
      answer = { message: `The License Manager answered ${response.status} ${response.statusText}.` };
    }
    if (answer.ok === undefined) answer.ok = response.ok;
    return answer;
  }

  function say(text, isError) {
    if (!notice) return;
    notice.textContent = text || "";
    notice.classList.toggle("is-error", Boolean(isError));
  }

  function focusNotice() {
    if (!notice) return;
    notice.setAttribute("tabindex", "-1");
    notice.focus();
  }

  function busy(button, on) {
    if (!button) return;
    if (on) button.setAttribute("aria-busy", "true");
    else button.removeAttribute("aria-busy");
  }

  // What identifies a control across a re-rendering of the live part.
  function identify(element) {
    if (!element || !live || !live.contains(element)) return null;
    for (const name of ["id", "data-refresh", "data-remove-license", "data-remove-user"]) {
      if (element.hasAttribute(name)) return `[${name}="${CSS.escape(element.getAttribute(name))}"]`;
    }
    if (element.name === "user") return `input[name="user"][value="${CSS.escape(element.value)}"]`;
    return null;
  }

  async function refreshLive(passive) {
    if (!live) return;
    const headers = { "X-Avtor-Fragment": "1" };
    if (passive) headers["X-Avtor-Poll"] = "1";
    let response;
    try {
      response = await fetch(window.location.pathname + window.location.search, {
        headers,
        credentials: "same-origin",
      });
    } catch (error) {
      return;
    }
    if (response.status === 401 || response.redirected) {
      window.location.assign(response.redirected ? response.url : "/sign-in");
      return;
    }
    if (!response.ok) return;
    const html = await response.text();
    const checked = new Set(
      Array.from(live.querySelectorAll('input[name="user"]:checked'), (box) => box.value),
    );
    const focused = identify(document.activeElement);
    live.innerHTML = html;
    live.dataset.fingerprint = response.headers.get("X-Avtor-Fingerprint") || "";
    for (const box of live.querySelectorAll('input[name="user"]')) box.checked = checked.has(box.value);
    if (focused) {
      const again = live.querySelector(focused);
      if (again) again.focus();
      else focusNotice();
    }
  }

  // --- dialogs ---------------------------------------------------------------------------------

  function openDialog(id, button) {
    const dialog = document.getElementById(id);
    if (!dialog) return;
    opener = button;
    const form = dialog.querySelector("form");
    if (form) {
      form.reset();
      form.dataset.done = "";
      const result = form.querySelector(".result");
      result.textContent = "";
      result.classList.remove("is-error");
    }
    dialog.showModal();
    const field = dialog.querySelector("input");
    if (field) field.focus();
  }

  function describeLicense(result, answer) {
    const license = answer.license || {};
    const message = document.createElement("p");
    message.textContent = answer.message;
    const facts = document.createElement("dl");
    const rows = [
      ["Seats", String(license.seats_granted ?? license.seats ?? "")],
      ["Expires", license.expires_at ? license.expires_at.replace("T", " ").replace("Z", " UTC") : "never"],
    ];
    if (license.customer) rows.push(["Customer", license.customer]);
    for (const [term, value] of rows) {
      const dt = document.createElement("dt");
      dt.textContent = term;
      const dd = document.createElement("dd");
      dd.textContent = value;
      facts.append(dt, dd);
    }
    result.replaceChildren(message, facts);
  }

  async function submitDialog(form) {
    const input = form.querySelector("input");
    const result = form.querySelector(".result");
    const button = form.querySelector('button[type="submit"]');
    const value = input.value.trim();
    if (!value) {
      if (form.dataset.done === "1") {
        form.closest("dialog").close();
        return;
      }
      result.classList.add("is-error");
      result.textContent = `Type the ${input.labels[0].textContent.toLowerCase()} first.`;
      input.focus();
      return;
    }
    busy(button, true);
    result.classList.remove("is-error");
    result.textContent =
      form.dataset.kind === "license" ? "Checking the key with the license service…" : "Giving a seat…";
    const answer = await call("POST", form.dataset.api, { [form.dataset.field]: value });
    busy(button, false);
    if (!answer.ok) {
      form.dataset.done = "";
      result.classList.add("is-error");
      result.textContent = answer.message;
      input.focus();
      input.select();
      return;
    }
    form.dataset.done = "1";
    input.value = "";
    if (form.dataset.kind === "license") describeLicense(result, answer);
    else result.textContent = answer.message;
    say(answer.message);
    input.focus();
    await refreshLive();
  }

  // Removals are confirmed in the page's dialog, which says what they will do.
  function askToConfirm(text, action, button) {
    const dialog = document.getElementById("confirm-removal");
    document.getElementById("confirm-removal-text").textContent = text;
    pendingRemoval = action;
    opener = button;
    dialog.showModal();
    dialog.querySelector("[data-confirms]").focus();
  }

  async function confirmed(dialog) {
    const action = pendingRemoval;
    pendingRemoval = null;
    opener = null;
    dialog.close();
    if (action) await action();
  }

  function count(name) {
    const shown = live ? live.querySelector(`[data-count="${name}"]`) : null;
    return shown ? Number(shown.textContent) : 0;
  }

  function removalOfUsers(names, shown) {
    const licensed = count("licensed");
    const holding = count("allocated");
    const who = shown.length <= 3 ? shown.join(", ") : `these ${shown.length} users`;
    const seats = names.length === 1 ? "Their seat is" : `Their ${names.length} seats are`;
    const after = holding - names.length;
    if (after > licensed) {
      const over = after - licensed;
      return `Remove ${who}? ${seats} freed at once; ${over} ${over === 1 ? "user" : "users"} will still be over the limit.`;
    }
    if (holding > licensed) return `Remove ${who}? ${seats} freed at once, and the users left are within the limit.`;
    return `Remove ${who}? ${seats} freed at once.`;
  }

  async function removeLicense(id) {
    say("Removing the license…");
    const answer = await call("DELETE", `/api/v1/licenses/${encodeURIComponent(id)}`);
    say(answer.message + (answer.ok && answer.advice ? ` ${answer.advice}` : ""), !answer.ok);
    await refreshLive();
    focusNotice();
  }

  async function refreshLicense(button) {
    busy(button, true);
    say("Re-validating the license with the license service, through the admin worker…");
    const answer = await call("POST", `/api/v1/licenses/${encodeURIComponent(button.dataset.refresh)}/refresh`);
    busy(button, false);
    say(answer.message, !answer.ok);
    await refreshLive();
  }

  async function removeUsers(names, button) {
    busy(button, true);
    const answer = await call("POST", "/api/v1/users/removal", { names });
    busy(button, false);
    say(answer.message, !answer.ok);
    await refreshLive();
    focusNotice();
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button");
    if (!button) return;
    if (button.dataset.opens) openDialog(button.dataset.opens, button);
    else if (button.hasAttribute("data-closes")) button.closest("dialog").close();
    else if (button.hasAttribute("data-confirms")) confirmed(button.closest("dialog"));
    else if (button.dataset.refresh) refreshLicense(button);
    else if (button.dataset.removeLicense) {
      const id = button.dataset.removeLicense;
      askToConfirm(button.dataset.warning, () => removeLicense(id), button);
    } else if (button.dataset.removeUser !== undefined) {
      const names = [button.dataset.removeUser];
      askToConfirm(removalOfUsers(names, [button.dataset.display]), () => removeUsers(names, null), button);
    }
  });

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (form.dataset.api) {
      event.preventDefault();
      submitDialog(form);
    } else if (form.hasAttribute("data-bulk-removal")) {
      event.preventDefault();
      const boxes = Array.from(form.querySelectorAll('input[name="user"]:checked'));
      if (boxes.length === 0) {
        say("Select the users to remove first: tick the box in front of each name.", true);
        focusNotice();
        return;
      }
      const names = boxes.map((box) => box.value);
      const shown = boxes.map((box) => box.dataset.display);
      const button = form.querySelector('button[type="submit"]');
      askToConfirm(removalOfUsers(names, shown), () => removeUsers(names, button), button);
    }
  });

  for (const dialog of document.querySelectorAll("dialog")) {
    dialog.addEventListener("close", () => {
      if (opener && document.contains(opener)) opener.focus();
      opener = null;
    });
  }

  // --- following the ledger ----------------------------------------------------------------------

  if (live) {
    window.setInterval(async () => {
      if (document.hidden) return;
      const summary = await call("GET", "/api/v1/summary", undefined, true);
      if (summary.fingerprint && summary.fingerprint !== live.dataset.fingerprint) await refreshLive(true);
    }, POLL_MS);
  }
})();
