// The request form's live total: posts the form to the figures URL as the editor types
// and shows the rows the server computes (the app's one pricing module), so what the
// editor sees is what the email, the inspect page and Checkout show.
(() => {
  const register = () => {
    const { Controller } = window.StimulusModule;
    class FiguresController extends Controller {
      static targets = ['rows', 'table', 'empty'];
      static values = { url: String };

      connect() {
        this.form = this.element.closest('form');
        if (!this.form) return;
        this.refresh = this.refresh.bind(this);
        this.schedule = this.schedule.bind(this);
        this.form.addEventListener('input', this.schedule);
        this.form.addEventListener('change', this.schedule);
        // InlinePanel adds and deletes lines without an input event.
        this.observer = new MutationObserver(this.schedule);
        this.observer.observe(this.form, { childList: true, subtree: true });
        this.refresh();
      }

      disconnect() {
        if (!this.form) return;
        this.form.removeEventListener('input', this.schedule);
        this.form.removeEventListener('change', this.schedule);
        this.observer.disconnect();
      }

      schedule(event) {
        if (event && event.target && this.element.contains(event.target)) return;
        clearTimeout(this.timer);
        this.timer = setTimeout(this.refresh, 300);
      }

      async refresh() {
        const body = new FormData(this.form);
        let data;
        try {
          const response = await fetch(this.urlValue, {
            method: 'POST',
            body,
            headers: { 'X-Requested-With': 'XMLHttpRequest' },
          });
          if (!response.ok) return;
          data = await response.json();
        } catch (error) {
          return;
        }
        this.rowsTarget.replaceChildren(
          ...data.rows.map(([label, amount]) => {
            const row = document.createElement('tr');
            const th = document.createElement('th');
            th.scope = 'row';
            th.textContent = label;
            const td = document.createElement('td');
            td.textContent = amount;
            row.append(th, td);
            return row;
          }),
        );
        this.tableTarget.hidden = data.rows.length === 0;
        this.emptyTarget.hidden = data.rows.length > 0;
      }
    }
    window.wagtail.app.register('wcb-figures', FiguresController);
  };
  if (window.wagtail && window.wagtail.app && window.StimulusModule) {
    register();
  } else {
    document.addEventListener('DOMContentLoaded', register);
  }
})();
