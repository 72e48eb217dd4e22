"""The simulated HubSpot portal: wire format, record store, search, HTTP app and seed data."""
