"""The networks and what is searched: ArchSpec and build_net (arch.py), the NAS-DIP upsampling cell
(upcell.py), search spaces and genomes (space.py) and the gene names a space may declare (genes.py).
The network families (dipsearch.families) build on these."""
