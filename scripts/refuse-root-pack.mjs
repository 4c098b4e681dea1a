// `prepack` of the repository: the repository's package.json carries developer scripts (prepare: build) and the
// root holds binding.gyp, so a tarball packed here could run a build on a user's install. The published tarball
// is packed from a staged copy by scripts/pack.mjs instead.
console.error(`normkit: do not pack or publish the repository root.
  npm run prebuilds && npm run pack:release     stages the package without scripts or binding.gyp and packs it
  npm publish build-pack/normkit-<version>.tgz   publishes that tarball`);
process.exit(1);
