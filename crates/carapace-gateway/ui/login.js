// The login form posts the token (never in a URL); a refused token comes back with ?failed=1.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  if (new URLSearchParams(location.search).has("failed")) {
    document.getElementById("login-error").hidden = false;
    history.replaceState(null, "", "/ui/login");
  }
});
