// Back-office behaviour that Flask-Admin's templates put in onclick handlers, which the
// Content-Security-Policy refuses: our overrides under templates/admin/ mark the elements
// with data attributes instead, and this listens for them.
(function () {
  "use strict";

  document.addEventListener("click", function (event) {
    var target = event.target instanceof Element ? event.target : null;
    if (!target) {
      return;
    }
    // A batch action of a list (admin/actions.html): Flask-Admin's actions.js runs it.
    var action = target.closest("[data-model-action]");
    if (action) {
      event.preventDefault();
      if (window.modelActions) {
        window.modelActions.execute(action.getAttribute("data-model-action"));
      }
      return;
    }
    // A button that asks first (admin/model/row_actions.html: delete).
    var asking = target.closest("[data-confirm]");
    if (asking && !window.confirm(asking.getAttribute("data-confirm"))) {
      event.preventDefault();
    }
  });
})();
