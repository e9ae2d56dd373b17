// AgadirStore
