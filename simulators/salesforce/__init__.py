"""The simulated Salesforce org: wire format, ids, schema, store, SOQL, HTTP app and seed data."""
