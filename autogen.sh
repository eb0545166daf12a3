#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Regenerates the build system from configure.ac and Makefile.am.
set -e
cd "$(dirname "$0")"
autoreconf --force --install --verbose
echo "Now run ./configure && make"
