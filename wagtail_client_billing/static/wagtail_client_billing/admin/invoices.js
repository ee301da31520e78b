// "Copy payment link" (the listing's row menu, the invoice's header menu and its page):
// say whether the link was copied, and close the menu it was chosen from.
(() => {
  if (window.wcbCopyLinkFeedback) return;
  window.wcbCopyLinkFeedback = true;
  const closeMenus = () => {
    document.querySelectorAll('[aria-expanded="true"]').forEach((toggle) => {
      if (toggle._tippy) toggle._tippy.hide();
    });
  };
  const feedback = (event, attribute, type) => {
    const button = event.target.closest('[data-wcb-copy-link]');
    if (!button) return;
    closeMenus();
    const text = button.getAttribute(attribute);
    document.dispatchEvent(new CustomEvent('w-messages:add', { detail: { clear: true, text, type } }));
  };
  document.addEventListener('w-clipboard:copied', (event) => feedback(event, 'data-wcb-copied', 'success'));
  document.addEventListener('w-clipboard:error', (event) => feedback(event, 'data-wcb-copy-failed', 'error'));
})();
