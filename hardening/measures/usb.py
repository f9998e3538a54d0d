"""usb (6-11): restrict recording devices (USB memory, smartphones) on terminals and servers."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from hardening.measures._base import Strict


class Device(Strict):
    """An allowed USB device, by interface class or by vendor:product (hex, as lsusb shows)."""

    name: str
    interface_class: str | None = Field(default=None, pattern=r"^[0-9a-f]{2}$")
    vendor: str | None = Field(default=None, pattern=r"^[0-9a-f]{4}$")
    product: str | None = Field(default=None, pattern=r"^[0-9a-f]{4}$")

    @model_validator(mode="after")
    def _one_way(self) -> Device:
        if self.interface_class is None and self.vendor is None:
            raise ValueError("an allowed device needs interface_class or vendor (and product)")
        return self


class Settings(Strict):
    storage: Literal["block", "allow"] = "block"
    usbguard: bool = True
    allow: list[Device] = [
        Device(name="HID (keyboard, mouse)", interface_class="03"),
        Device(name="hub", interface_class="09"),
    ]
    # Interface classes always blocked: 08 mass storage, 06 still image (PTP, and MTP phones).
    block_interface_classes: list[str] = ["08", "06"]
    block_thunderbolt_firewire: bool = True
