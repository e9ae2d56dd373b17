// AgadirClient
