"""What ``manage.py client_billing_dev`` runs: its processes, its SMTP sink and mail log, and
the settings it gives the processes it starts. Development only; nothing here is imported
by the app itself, and the sink needs nothing outside the standard library."""
