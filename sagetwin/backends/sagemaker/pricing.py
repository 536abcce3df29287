"""Hourly prices for SageMaker instance types, to say what a launch can cost before it starts.

The built-in table is us-east-1 on-demand pricing; override or extend it with a JSON file
``{"ml.p3.2xlarge": 3.825, ...}`` named by ``$SAGETWIN_PRICES``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from sagetwin.core.errors import ConfigurationError

US_EAST_1_ON_DEMAND = {  # USD per instance-hour
    "ml.p3.2xlarge": 3.825,
    "ml.p3.8xlarge": 14.688,
    "ml.g4dn.xlarge": 0.736,
    "ml.g4dn.2xlarge": 0.94,
    "ml.g5.xlarge": 1.408,
    "ml.g5.2xlarge": 1.515,
    "ml.m5.xlarge": 0.23,
    "ml.m5.large": 0.115,
    "ml.c5.xlarge": 0.204,
}


def price_table() -> dict[str, float]:
    table = dict(US_EAST_1_ON_DEMAND)
    override = os.environ.get("SAGETWIN_PRICES")
    if override:
        try:
            table.update({k: float(v) for k, v in json.loads(Path(override).read_text()).items()})
        except (OSError, ValueError, AttributeError) as exc:
            raise ConfigurationError(f"$SAGETWIN_PRICES={override} is not a readable JSON object of prices ({exc}).",
                                     'write e.g. {"ml.p3.2xlarge": 3.825} to that file, or unset the variable.'
                                     ) from None
    return table


def hourly_price(instance_type: str) -> float | None:
    return price_table().get(instance_type)


@dataclass(frozen=True)
class CostLine:
    what: str
    instance_type: str
    count: int
    hourly: float | None
    hours: float | None  # None: runs until deleted

    @property
    def hourly_total(self) -> float | None:
        return None if self.hourly is None else self.hourly * self.count

    @property
    def worst_case(self) -> float | None:
        if self.hourly_total is None or self.hours is None:
            return None
        return self.hourly_total * self.hours

    def render(self) -> str:
        price = f"${self.hourly:.3f}/h" if self.hourly is not None else "price unknown (add it to $SAGETWIN_PRICES)"
        line = f"{self.what}: {self.count} x {self.instance_type} at {price}"
        if self.hours is not None:
            worst = f"${self.worst_case:.2f}" if self.worst_case is not None else "unknown"
            line += f", at most {self.hours:.1f} h (max_run) -> worst case {worst}"
        else:
            line += " until deleted"
            if self.hourly_total is not None:
                line += f" (${self.hourly_total:.3f} for every hour it stays up)"
        return line
