// The one Node.js global vercel/ uses: Vercel's edge runtime provides `process.env`. Declared
// here because the type check runs without @types/node (which the Vercel build installs).
declare var process: { env: Record<string, string | undefined> };
