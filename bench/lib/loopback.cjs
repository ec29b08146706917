// Preloaded into Portkey's gateway with `node --require` (bench/run).
//
// Portkey's start-server.js takes a port but no host and so listens on
// every interface; the benchmark must listen on loopback only. This makes
// any listen() that names a port but no host bind 127.0.0.1 instead. It
// changes nothing else about the gateway.
'use strict';
const net = require('net');
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const first = args[0];
  if (first !== null && typeof first === 'object') {
    if (first.port !== undefined && first.host === undefined && first.path === undefined) {
      args[0] = { ...first, host: '127.0.0.1' };
    }
  } else if (typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first))) {
    if (args[1] === undefined || args[1] === null) {
      args[1] = '127.0.0.1';
    } else if (typeof args[1] === 'function') {
      args.splice(1, 0, '127.0.0.1');
    }
  }
  return listen.apply(this, args);
};
