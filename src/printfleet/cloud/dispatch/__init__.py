"""The cloud's dispatch side: the MQTT core that wires it (``core``), the link supervisor that
decides whether the broker link can be trusted (``link``, S8/S9), the fleet view built from what
printers report (``fleet_view``), the dispatcher that carries out the pure planner's decisions
(``dispatcher``), and its job repository and roster over the store (``store_jobs``)."""
