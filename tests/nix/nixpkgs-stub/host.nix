# The host's Python, which the stand-in's python3 is made from. tests/nix/stand_in.py
# rewrites this file in a copy of the stand-in; as committed, there is no host
# Python and every Python build fails, saying so.
{
  python = null;
  pythonVersion = "3.11";
  sitePackages = [ ];
}
