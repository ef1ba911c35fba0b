it('loads @fastify/static', async () => {
  const m = await import('@fastify/static');
  expect(m).toBeDefined();
});
