// AgadirWire
