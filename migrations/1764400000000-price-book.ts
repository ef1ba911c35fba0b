import type { MigrationInterface, QueryRunner } from 'typeorm';

export class PriceBook1764400000000 implements MigrationInterface {
  name = 'PriceBook1764400000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE ai_model_prices (
        provider          text        NOT NULL,
        model             text        NOT NULL,
        source            text        NOT NULL,
        input_price       bigint,
        output_price      bigint,
        cache_read_price  bigint,
        cache_write_price bigint,
        tiers             jsonb,
        created_at        timestamptz NOT NULL DEFAULT now(),
        updated_at        timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT ai_model_prices_pkey PRIMARY KEY (provider, model, source),
        CONSTRAINT ai_model_prices_source_check CHECK ("source" IN ('default', 'custom')),
        CONSTRAINT ai_model_prices_input_price_check CHECK ("input_price" >= 0),
        CONSTRAINT ai_model_prices_output_price_check CHECK ("output_price" >= 0),
        CONSTRAINT ai_model_prices_cache_read_price_check CHECK ("cache_read_price" >= 0),
        CONSTRAINT ai_model_prices_cache_write_price_check CHECK ("cache_write_price" >= 0)
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE ai_model_prices');
  }
}
