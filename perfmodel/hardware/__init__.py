"""Hardware descriptions: the GPU catalogue (`catalogue.get_device`) and the local CPU."""
