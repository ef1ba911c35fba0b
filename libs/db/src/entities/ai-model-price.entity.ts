import { Check, Column, CreateDateColumn, Entity, PrimaryColumn, UpdateDateColumn } from 'typeorm';

/** A price tier as stored in ai_model_prices.tiers (micro-USD per million tokens). */
export interface PriceTier {
  min_context_tokens: number;
  input_price: number | null;
  output_price: number | null;
  cache_read_price: number | null;
  cache_write_price: number | null;
}

export type PriceSource = 'default' | 'custom';

// Mirrors migrations/*-price-book.ts exactly (names included) so the drift check stays empty.
@Entity({ name: 'ai_model_prices' })
@Check('ai_model_prices_source_check', `"source" IN ('default', 'custom')`)
@Check('ai_model_prices_input_price_check', `"input_price" >= 0`)
@Check('ai_model_prices_output_price_check', `"output_price" >= 0`)
@Check('ai_model_prices_cache_read_price_check', `"cache_read_price" >= 0`)
@Check('ai_model_prices_cache_write_price_check', `"cache_write_price" >= 0`)
export class AiModelPriceEntity {
  @PrimaryColumn({ type: 'text', primaryKeyConstraintName: 'ai_model_prices_pkey' })
  provider!: string;

  @PrimaryColumn({ type: 'text', primaryKeyConstraintName: 'ai_model_prices_pkey' })
  model!: string;

  @PrimaryColumn({ type: 'text', primaryKeyConstraintName: 'ai_model_prices_pkey' })
  source!: PriceSource;

  // BIGINT arrives as a string from pg; repositories convert deliberately.
  @Column({ name: 'input_price', type: 'bigint', nullable: true })
  inputPrice!: string | null;

  @Column({ name: 'output_price', type: 'bigint', nullable: true })
  outputPrice!: string | null;

  @Column({ name: 'cache_read_price', type: 'bigint', nullable: true })
  cacheReadPrice!: string | null;

  @Column({ name: 'cache_write_price', type: 'bigint', nullable: true })
  cacheWritePrice!: string | null;

  @Column({ type: 'jsonb', nullable: true })
  tiers!: PriceTier[] | null;

  @CreateDateColumn({ name: 'created_at', type: 'timestamptz', default: () => 'now()' })
  createdAt!: Date;

  @UpdateDateColumn({ name: 'updated_at', type: 'timestamptz', default: () => 'now()' })
  updatedAt!: Date;
}
