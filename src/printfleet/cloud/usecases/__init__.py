"""The cloud's use cases, one module per area: what a person may do and what it does, defined
once and reached from HTTP, the CLI and the demo alike.

``accounts`` (sign-up, login, tokens), ``printers`` (provisioning, shares, live state, safety
settings, commands), ``files``, ``jobs``, ``alerts`` and ``channels``; ``principal`` holds who
is asking and the ways a use case says no, ``live`` the printers as the running cloud reaches
them, and ``ports`` what the use cases need of the store, as narrow protocols.
:class:`~printfleet.cloud.service.CloudService` builds them over one store.
"""
