"""The built-in demo source: a simulated HubSpot portal and a seeded inside-sales dataset."""

from connectors.demo.dataset import PortalDataset, generate_dataset
from connectors.demo.hubspot_portal import (
    FaultPlan,
    HubSpotPortal,
    RunningPortal,
    serve_portal,
)

__all__ = [
    "FaultPlan",
    "HubSpotPortal",
    "PortalDataset",
    "RunningPortal",
    "generate_dataset",
    "serve_portal",
]
