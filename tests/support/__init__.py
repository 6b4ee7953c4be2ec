"""The tests' one support kit: free ports and server processes (``server``), loopback HTTP servers
(``loopback``), generated media (``clips``), a fake engine with the real engine's interface
(``fake_engine``), and checkpoint variants of the tiny model (``checkpoints``)."""
