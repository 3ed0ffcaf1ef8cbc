"""The stage effects every method shares, in one order (common.md "Edge, blending, effects"):

1. ``plan``: which effects a tumor gets (necrosis, capsule, satellites, mass effect), drawn
   once per tumor before any provider runs;
2. ``mass_effect``: the tissue around the site pushed aside (before the geometry is built);
3. ``lesions``: satellite nodules and the necrotic region, for geometries that do not grow
   them themselves;
4. ``shading``: the appearance's change completed by vessel damping, capsule and necrosis,
   weighted by the soft edge: the ROI's final HU change.
"""
