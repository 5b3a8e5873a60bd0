"""Sample-quality metrics and the feature extractors they are computed in.

The scores are host-side numpy in float64 (fid, kid, inception_score), except the O(N^2)
nearest-neighbour search of precision/recall, which runs on the devices. Features come from an
`extractors.Extractor`: the FID Inception network, or a classifier trained by the project.
"""
