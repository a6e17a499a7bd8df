# -*- coding: utf-8 -*-
# Copyright: redbutton.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    # The application root shared by every module of the collection.
    DOCUMENTATION = r'''
options:
  root:
    description:
      - The application root on the target host, for example C(/srv/myapp).
      - Releases live in C(<root>/releases/<id>), shared data in C(<root>/shared),
        the active release is the symlink C(<root>/current), and the collection's own
        state (ledger, lock, baselines, migration scripts) lives in C(<root>/.redbutton).
    type: path
    required: true
'''

    # Attributes common to every module of the collection.
    ATTRIBUTES = r'''
attributes:
  check_mode:
    support: full
    description: Can run in check_mode and return changed status prediction without modifying target.
  diff_mode:
    support: full
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
  platform:
    platforms: posix
    description: Target OS/families that can be operated against.
    support: N/A
'''
