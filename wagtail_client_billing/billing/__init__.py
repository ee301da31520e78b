"""The domain layer: what an invoice, a payment and an account may do; views, webhooks and tasks call it."""
