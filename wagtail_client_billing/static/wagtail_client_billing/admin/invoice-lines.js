/*
 * The Add billing request form's lines: a live total, and the catalogue's products.
 *
 * A Stimulus controller registered with Wagtail's own Stimulus application (no other
 * framework). It adds up quantity × unit price of every line that is not deleted, in
 * integer minor units as the server does (never floating-point sums of prices), and
 * shows the total formatted for the chosen currency. While the request has lines, the
 * single Amount field is disabled: the amount is their total. Choosing a product copies
 * its description and unit price into the line; the site's catalogue alone is offered.
 */
(() => {
  const { Controller } = window.StimulusModule;
  const PRICE = /^[0-9]+(?:\.[0-9]+)?$/;

  /** "12.5" -> 1250 for exponent 2; null when it is not a price in that currency. */
  const toMinor = (raw, exponent) => {
    const text = (raw || '').trim();
    if (!PRICE.test(text)) return null;
    const [whole, fraction = ''] = text.split('.');
    if (fraction.length > exponent) return null;
    return Number(whole + fraction.padEnd(exponent, '0'));
  };

  class InvoiceLinesController extends Controller {
    static targets = ['output', 'total', 'problem'];

    static values = {
      prefix: { type: String, default: 'lines' },
      exponents: { type: Object, default: {} },
      catalogue: { type: Object, default: {} },
    };

    connect() {
      this.update();
    }

    field(name) {
      return this.element.querySelector(`[name="${name}"]`);
    }

    /** The indexes of the lines on the page that are not deleted. */
    lineIndexes() {
      const pattern = new RegExp(`^${this.prefixValue}-(\\d+)-quantity$`);
      return [...this.element.querySelectorAll(`[name^="${this.prefixValue}-"][name$="-quantity"]`)]
        .map((input) => pattern.exec(input.name))
        .filter(Boolean)
        .map((match) => match[1])
        .filter((index) => {
          const deleted = this.field(`${this.prefixValue}-${index}-DELETE`);
          return !(deleted && ['1', 'true', 'on'].includes(deleted.value));
        });
    }

    /** A product was chosen: copy its description and unit price into the line. */
    change(event) {
      const { name, value } = event.target;
      const match = new RegExp(`^${this.prefixValue}-(\\d+)-product$`).exec(name || '');
      if (match && value && this.catalogueValue[value]) {
        const product = this.catalogueValue[value];
        const line = `${this.prefixValue}-${match[1]}`;
        const description = this.field(`${line}-description`);
        const price = this.field(`${line}-unit_price`);
        if (description) description.value = product.description;
        if (price) price.value = product.unit_price;
        const currency = this.field('currency');
        if (currency && product.currency && !currency.value) currency.value = product.currency;
      }
      this.update();
    }

    update() {
      const currency = (this.field('currency') || {}).value || '';
      const site = (this.field('site') || {}).value || '';
      const exponent = this.exponentsValue[currency] ?? 2;
      const indexes = this.lineIndexes();
      const amount = this.field('amount');
      this.offerCatalogue(site, currency);

      if (!indexes.length) {
        if (amount && amount.disabled) {
          // Back to the quick path: the editor's own amount, as they typed it.
          amount.disabled = false;
          amount.value = amount.dataset.typed || '';
        }
        this.outputTarget.hidden = true;
        return;
      }
      if (amount && !amount.disabled) {
        amount.dataset.typed = amount.value;
        amount.disabled = true; // not submitted: the server adds up the lines itself
      }
      this.outputTarget.hidden = false;

      let total = 0;
      let complete = true;
      indexes.forEach((index) => {
        const line = `${this.prefixValue}-${index}`;
        const quantity = Number((this.field(`${line}-quantity`) || {}).value);
        const unit = toMinor((this.field(`${line}-unit_price`) || {}).value, exponent);
        if (!Number.isInteger(quantity) || quantity < 1 || unit === null) {
          complete = false;
          return;
        }
        total += quantity * unit;
      });
      this.totalTarget.textContent = currency ? this.format(total, currency, exponent) : '';
      this.problemTarget.hidden = complete;
      if (amount) amount.value = (total / 10 ** exponent).toFixed(exponent);
    }

    format(minor, currency, exponent) {
      const locale = document.documentElement.lang || undefined;
      try {
        return new Intl.NumberFormat(locale, { style: 'currency', currency }).format(
          minor / 10 ** exponent,
        );
      } catch (error) {
        return `${(minor / 10 ** exponent).toFixed(exponent)} ${currency}`;
      }
    }

    /** Offer each line the active products of the chosen site in the chosen currency. */
    offerCatalogue(site, currency) {
      this.element
        .querySelectorAll(`select[name^="${this.prefixValue}-"][name$="-product"]`)
        .forEach((select) => {
          [...select.options].forEach((option) => {
            const product = this.catalogueValue[option.value];
            if (!product) return;
            option.hidden =
              (site && String(product.site) !== site) ||
              (currency && product.currency !== currency);
          });
        });
    }
  }

  window.wagtail.app.register('wcb-invoice-lines', InvoiceLinesController);
})();
