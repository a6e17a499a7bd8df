"""Make the collection importable as ansible_collections.redbutton.deploy.

The repo root is the collection root; `make link` points
.build/collections/ansible_collections/redbutton/deploy at it. This does the same for
a bare `pytest` run, so tests import the code exactly as Ansible does.
"""
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(REPO, '.build', 'collections')
LINK = os.path.join(COLLECTIONS, 'ansible_collections', 'redbutton', 'deploy')

if not os.path.islink(LINK):
    os.makedirs(os.path.dirname(LINK), exist_ok=True)
    os.symlink('../../../..', LINK)
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)
os.environ.setdefault('ANSIBLE_COLLECTIONS_PATH', COLLECTIONS)
