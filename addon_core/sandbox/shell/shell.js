// The sandbox's stand-in for Clockify's web app: frames the add-on and answers its messages.
(function () {
  const data = document.body.dataset;
  const frame = document.getElementById("addon");
  const appOrigin = new URL(data.app).origin;
  document.getElementById("who").textContent = data.role + " · " + data.theme;

  async function mintToken() {
    const answer = await fetch("/_sandbox/user-token", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ role: data.role, theme: data.theme, expiresIn: Number(data.expires) }),
    });
    return (await answer.json()).token;
  }

  function toast(type, message) {
    const node = document.createElement("div");
    node.className = "toast " + type;
    node.textContent = message;
    document.getElementById("toasts").append(node);
    setTimeout(() => node.remove(), 6000);
  }

  window.addEventListener("message", async (event) => {
    if (event.origin !== appOrigin || event.source !== frame.contentWindow) return;
    let message = event.data;
    try { if (typeof message === "string") message = JSON.parse(message); } catch { return; }
    if (!message) return;
    if (message.action === "refreshAddonToken") {
      window.sandboxRefreshes = (window.sandboxRefreshes || 0) + 1;
      const token = await mintToken();
      frame.contentWindow.postMessage({ title: "refreshAddonToken", body: token }, appOrigin);
    } else if (message.action === "toastrPop" && message.payload) {
      toast(message.payload.type, message.payload.message);
    }
  });

  mintToken().then((token) => {
    frame.src = data.app + "/ui/sidebar?auth_token=" + encodeURIComponent(token) + (location.hash || "");
  });
})();
