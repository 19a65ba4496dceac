"""The SIMCom SIM7600 emulator under its original name: `Sim7600Emulator` is the simcom_sim7600
family of hil/gsm with the constructor and scripting API the tests and the demo have always used."""

from __future__ import annotations

from hil.gsm.simcom import END_ORDER_ITEMS, SimcomSim7600

__all__ = ["END_ORDER_ITEMS", "Sim7600Emulator"]


class Sim7600Emulator(SimcomSim7600):
    """SIM7600 module on pseudo-terminals: AT port (interface 2) and USB audio port (interface 4)."""

    def __init__(self, *, imei: str = "867584030000001", model: str = "SIMCOM_SIM7600G-H",
                 revision: str = "LE20B04SIM7600G22", ring_interval: float = 3.0,
                 pcm_accept_after: float = 0.0, end_order: tuple[str, ...] = END_ORDER_ITEMS,
                 imsi: str = "001010123456789", iccid: str = "89010100000000000019",
                 operator: str = "HIL Network", boot_urcs: bool = True, **options) -> None:
        super().__init__(imei=imei, model=model, revision=revision, ring_interval=ring_interval,
                         pcm_accept_after=pcm_accept_after, end_order=end_order, imsi=imsi, iccid=iccid,
                         operator=operator, boot_urcs=boot_urcs, **options)
