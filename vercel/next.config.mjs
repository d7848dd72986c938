/** @type {import('next').NextConfig} */
const nextConfig = {
  // Only route handlers and middleware: no pages, no images.
  reactStrictMode: true,
};

export default nextConfig;
