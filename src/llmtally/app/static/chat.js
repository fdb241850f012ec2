// llmtally's script in the chat (Chainlit's custom_js). It runs before Chainlit's own code.
"use strict";
(function () {
  // The chat's theme follows the system's light or dark setting, as the pages do, until the person
  // picks one in the chat's own menu.
  try {
    if (!localStorage.getItem("vite-ui-theme")) localStorage.setItem("vite-ui-theme", "system");
  } catch (e) { /* storage refused: Chainlit's default stays */ }

  // On a narrow screen the usage panel would cover the chat: the server reads this mark when the
  // chat connects and then leaves the panel closed (the /usage command still shows the totals).
  const NARROW = 768;
  const mark = () => {
    document.cookie = "llmtally_narrow=" + (window.innerWidth < NARROW ? "1" : "0") + "; path=/; SameSite=Strict";
  };
  mark();
  window.addEventListener("resize", mark);

  // A refused login: Chainlit shows the server's code ("Unauthorized: credentialssignin").
  const REFUSED = "Wrong user name or password.";
  const CODE = /credentials ?signin/i;
  const reword = () => {
    if (!location.pathname.startsWith("/login")) return;
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      if (CODE.test(node.nodeValue)) node.nodeValue = REFUSED;
    }
  };
  new MutationObserver(reword).observe(document.documentElement, { childList: true, subtree: true, characterData: true });
})();
