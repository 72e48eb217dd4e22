"""Simulated CRMs (a HubSpot portal, a Salesforce org) for the demo, the tests and the benchmarks."""
