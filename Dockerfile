# The pgwarden proxy (proxy/main.ts) as a container image; built by `cdk deploy` through
# ContainerImage.fromAsset (infra/constructs/proxy.ts). The build stage bundles the TypeScript
# entry point and its runtime dependencies into one ESM file with esbuild, so the image carries
# neither tsx nor node_modules.
ARG NODE_IMAGE=node:22-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
ARG ESBUILD_VERSION=0.28.2
# A global esbuild: the devDependencies (test servers, CDK) are hundreds of MB the bundle never uses.
RUN npm install --global --no-fund --no-audit esbuild@${ESBUILD_VERSION}
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-fund --no-audit
COPY shared ./shared
COPY proxy ./proxy
# test/infra/proxy-image.test.ts runs these two steps as written (the JSON form keeps them parseable).
# The banner gives CommonJS dependencies (and emscripten's loader) require and __dirname in ESM.
RUN ["esbuild", "proxy/main.ts", "--bundle", "--platform=node", "--target=node22", "--format=esm", "--sourcemap", "--outfile=dist/proxy.mjs", "--banner:js=import { createRequire as __pgwCreateRequire } from 'node:module'; import { fileURLToPath as __pgwFileURLToPath } from 'node:url'; const require = __pgwCreateRequire(import.meta.url); const __filename = __pgwFileURLToPath(import.meta.url); const __dirname = __pgwFileURLToPath(new URL('.', import.meta.url));"]
# The SQL parser (libpg-query) loads its WebAssembly from beside the module that runs it: the bundle.
RUN ["cp", "node_modules/libpg-query/wasm/libpg-query.wasm", "dist/"]

FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /src/dist/ ./
# The audit spool's mount point (PGWARDEN_AUDIT_SPOOL_DIR in infra/constructs/proxy.ts): ECS on
# Fargate gives a task volume the owner and mode of the image's directory, and the root file system
# is read-only, so the directory must exist here, owned by the user the proxy runs as.
RUN mkdir -p /var/lib/pgwarden/spool && chown -R node:node /var/lib/pgwarden
VOLUME ["/var/lib/pgwarden/spool"]
USER node
EXPOSE 6432
# SIGTERM starts the drain (stop accepting, let sessions finish, flush audit events).
STOPSIGNAL SIGTERM
CMD ["node", "--enable-source-maps", "proxy.mjs"]
