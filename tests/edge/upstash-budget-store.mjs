import { Redis } from '@upstash/redis';
// automaticDeserialization off: by default the client JSON-parses every field it reads, which
// would hand Warden the ledger as an object and the version as a number instead of as stored.
const redis = Redis.fromEnv({ automaticDeserialization: false });
const CAS = `local v = redis.call('HGET', KEYS[1], 'version')
if (v or '') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'version', (tonumber(ARGV[1]) or 0) + 1, 'value', ARGV[2])
return 1`;
export const budgetStore = {
  async get(user) {
    const [value, version] = await redis.hmget(`warden:budget:${user}`, 'value', 'version');
    return { value, version };
  },
  async compareAndSet(user, version, value) {
    return (await redis.eval(CAS, [`warden:budget:${user}`], [version ?? '', value])) === 1;
  },
};
