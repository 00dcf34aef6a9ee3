/**
 * Loaded with `mocha --import` by fast.test.ts to run the engine's own test
 * suite (engine.test.ts) with every AEAD SA on the styx_esp addon's
 * transforms: each SA the engine installs gets them right after addSa, as
 * the userspace backend does. Prints how many SAs it converted, so the
 * parent test knows the hook took effect.
 */
import { EspEngine } from '../../../src/esp/engine.js';
import { useFastCrypto } from '../../../src/esp/fast.js';
import { espAddon } from '../../../src/esp/native.js';
import type { SaParams } from '../../../src/dataplane/api.js';
import type { EspSaOptions } from '../../../src/esp/sa.js';

const addon = espAddon();
if (!addon) throw new Error('fast-hook: the styx_esp addon is not built');
let converted = 0;
const addSa = EspEngine.prototype.addSa;
EspEngine.prototype.addSa = function (this: EspEngine, p: SaParams, options?: EspSaOptions): void {
  addSa.call(this, p, options);
  if (useFastCrypto(this.getSa(p.spi, p.direction)!, p, addon)) converted++;
};
process.on('exit', () => process.stderr.write(`fast-hook: ${converted} SAs on the addon's AEAD\n`));
