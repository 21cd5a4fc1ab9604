// Preload (node --require) that makes the development dependencies unresolvable, as after
// `npm ci --omit=dev`: resolving `selfsigned` or `azurite` (or a file inside them) throws MODULE_NOT_FOUND,
// for `require` and `require.resolve` alike. Used by test/cli/productionInstall.test.ts.
'use strict';
const Module = require('node:module');

const resolveFilename = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {
  if (/^(selfsigned|azurite)(\/|$)/.test(request)) {
    const error = new Error(`Cannot find module '${request}'`);
    error.code = 'MODULE_NOT_FOUND';
    throw error;
  }
  return resolveFilename.call(this, request, ...rest);
};
