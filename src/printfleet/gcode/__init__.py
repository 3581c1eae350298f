"""G-code as printfleet reads it: slicer metadata (print time, filament, temperatures) from a
file's header and footer. Shared by the cloud (checking uploads), the simulator and tools."""
