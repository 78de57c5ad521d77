// Progressive only: the page is complete without this. Tooltips on hover and focus,
// and a quiet refresh every minute while the tab is visible.
(function () {
  var tip = null;
  function show(cell) {
    hide();
    tip = document.createElement("div");
    tip.className = "tip";
    tip.textContent = cell.getAttribute("data-tip");
    document.body.appendChild(tip);
    var r = cell.getBoundingClientRect();
    tip.style.left = Math.max(4, Math.min(window.scrollX + r.left - 60, window.scrollX + document.documentElement.clientWidth - 270)) + "px";
    tip.style.top = (window.scrollY + r.bottom + 6) + "px";
  }
  function hide() { if (tip) { tip.remove(); tip = null; } }
  document.addEventListener("DOMContentLoaded", function () {
    // The tip travels in the title (hover without JavaScript, and the cell's accessible
    // name); with JavaScript it moves to data-tip so the native tooltip does not double it.
    document.querySelectorAll(".cell[title]").forEach(function (cell) {
      cell.setAttribute("data-tip", cell.getAttribute("title"));
      cell.setAttribute("aria-label", cell.getAttribute("title"));
      cell.removeAttribute("title");
      cell.addEventListener("mouseenter", function () { show(cell); });
      cell.addEventListener("focus", function () { show(cell); });
      cell.addEventListener("mouseleave", hide);
      cell.addEventListener("blur", hide);
    });
  });
  setInterval(function () { if (document.visibilityState === "visible") location.reload(); }, 60000);
})();
