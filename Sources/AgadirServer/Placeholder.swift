// AgadirServer
