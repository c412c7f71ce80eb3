# Sourced by scripts/test.sh and scripts/tutorial.sh: installs Quanta (with the extra in $1) into
# the current Python environment, reusing the build directory (build/<wheel tag>). pip's build
# isolation would put scikit-build-core and nanobind in a new temporary environment each time;
# their paths change, CMake sees new compiler flags and everything is rebuilt (~90 s). So the
# build requirements are installed into this environment once and the build runs in it.
quanta_install() {
  local extra=$1
  if ! "$PY" -c "import scikit_build_core, nanobind" 2> /dev/null; then
    "$PY" -m pip install -q --disable-pip-version-check "scikit-build-core>=0.11" "nanobind>=2.0"
  fi
  "$PY" -m pip install -q --disable-pip-version-check --no-build-isolation ".[$extra]"
}
