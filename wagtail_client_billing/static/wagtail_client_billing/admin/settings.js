// Settings -> Client Billing: small behaviours Wagtail's settings form has no option for.
(() => {
  const form = document.querySelector('form[data-edit-form]');
  if (!form) return;

  // 1. The custom SMTP fields are disabled while "Use a custom SMTP server" is off. They
  //    are enabled again just before the form is sent, so what is stored is posted back
  //    unchanged (a disabled field would be left out of the request).
  const toggle = form.querySelector('#id_use_custom_smtp');
  const smtpNames = ['smtp_host', 'smtp_port', 'smtp_security', 'smtp_timeout',
    'smtp_username', 'smtp_password', 'clear_smtp_password'];
  const smtpFields = smtpNames.map((name) => form.querySelector(`[name="${name}"]`)).filter(Boolean);
  const applySmtp = () => {
    smtpFields.forEach((input) => { input.disabled = toggle && !toggle.checked; });
  };
  if (toggle) {
    toggle.addEventListener('change', applySmtp);
    applySmtp();
  }

  // 2. The Save button only on tabs that have something to save (the Stripe and
  //    Invoices tabs act through their own screens).
  const panels = Array.from(form.querySelectorAll('[role="tabpanel"]'));
  const saveActions = form.querySelector('footer .actions--primary');
  const hasFields = (panel) => Array.from(panel.querySelectorAll('input, select, textarea'))
    .some((input) => input.name && input.type !== 'hidden' && !input.closest('[data-client-billing-no-save]'));
  const active = () => panels.find((panel) => !panel.hidden);
  const applySave = () => {
    const panel = active();
    if (saveActions && panel) saveActions.style.display = hasFields(panel) ? '' : 'none';
  };
  if (panels.length) {
    const observer = new MutationObserver(applySave);
    panels.forEach((panel) => observer.observe(panel, { attributes: true, attributeFilter: ['hidden'] }));
    applySave();
  }

  form.addEventListener('submit', () => {
    smtpFields.forEach((input) => { input.disabled = false; });
    // 3. Come back to the tab the form was sent from: the redirect after saving has no
    //    fragment, so the browser keeps the one of the URL the form was posted to.
    const panel = active();
    if (panel && panel.id && !form.getAttribute('formaction')) {
      const url = new URL(form.action || window.location.href, window.location.href);
      url.hash = panel.id;
      form.action = url.toString();
    }
  });

  // 4. Back from an action (connect, refresh, unlink...) on "#tab-stripe": the browser
  //    scrolls to the tab, which pushes the message about what just happened out of view.
  const messages = document.querySelector('.messages li');
  if (messages && window.location.hash.startsWith('#tab-')) {
    // Wagtail's admin scrolls inside its own container, not the window.
    const intoView = () => messages.closest('.messages').scrollIntoView({ block: 'start', behavior: 'instant' });
    window.addEventListener('load', () => requestAnimationFrame(intoView), { once: true });
    intoView();
  }
})();
