"""The printer side: the safety gate over MQTT, hardware, LAN API and SD card."""
